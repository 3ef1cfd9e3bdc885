"""The dbt docs site shows the lineage of the `orders_details` mart, checked in headless Chromium,
down to what reads it: the export (the dbt exposure `orders_details_export`,
transform/models/marts/__exposures.yml).

What `make docs` does, end to end:

1. generate the site through Meltano (`meltano invoke dbt-postgres:docs-generate`), which writes
   transform/target/{index.html, manifest.json, catalog.json};
2. serve transform/target over HTTP (the site loads manifest.json and catalog.json with XHR,
   so it does not work from file://);
3. open the model page `#!/model/model.northwind.orders_details` in headless Chromium, click
   "View Lineage Graph" (the model's direct neighbours: the staging models and the export), then
   "View Fullscreen" (the whole lineage, from the raw sources to the export) and read the nodes
   and edges shown; then, in the model's "Referenced By" list, open the "Exposures" tab and follow
   the link to the export's page, and read it;
4. save a screenshot of the full lineage view, and the graphs read as JSON, under artifacts/
   (docs-lineage-orders_details.{png,json}) for a human to look at.

The lineage graph is drawn on a <canvas>, so its labels are not in the DOM. The test therefore
serves one extra page of its own, from the same origin: it loads the docs site in a full-window
iframe, clicks the launcher like a user would, then reads the graph from the Cytoscape.js
instance that draws it (`container._cyreg.cy`) and writes the result as JSON into its own DOM,
which `chromium --dump-dom` prints. No browser driver or Python package is needed, only the
Debian package `chromium`.

Without /usr/bin/chromium the browser test is skipped, except under CI=true where it fails.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Project
from northwind_elt import settings as settings_mod

CHROMIUM = Path("/usr/bin/chromium")
MODEL = "model.northwind.orders_details"
TABLES = ["orders", "order_details", "products", "customers", "employees", "shippers"]
STAGING = [f"model.northwind.stg_northwind__{table}" for table in TABLES]
SOURCES = [f"source.northwind.northwind.{table}" for table in TABLES]
# the export (`make export`, src/northwind_elt/export.py), declared in transform/models/marts/__exposures.yml
EXPOSURE = "exposure.northwind.orders_details_export"
EXPOSURE_LABEL = "orders_details export (CSV and JSON)"
PROBE_PATH = "/__lineage_probe__.html"
WINDOW = (1400, 1000)

# Loads the docs site in an iframe and acts like a user: waits for the model page, clicks
# "View Lineage Graph" (a sidebar graph of the model's direct neighbours), then "View Fullscreen"
# (the whole lineage), then opens the "Exposures" tab of the model's "Referenced By" list and
# follows its link to the export's page. What each graph and the export's page show goes into
# <pre id="probe"> as JSON: {"page": {...}, "sidebar": {"nodes": [...], "edges": [...]},
# "fullscreen": {...}, "exposure": {"url", "title", "text", "depends_on": [...]}, "error": ...}
PROBE_HTML = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>lineage probe</title></head>
<body style="margin:0; overflow:hidden">
<pre id="probe" hidden>pending</pre>
<iframe id="docs" src="/#!/model/__MODEL__" style="width:100vw; height:100vh; border:0"></iframe>
<script>
  var frame = document.getElementById("docs");
  var result = {page: null, sidebar: null, fullscreen: null, exposure: null, error: null};
  var exposureLink = null;  // the export's link in the model's "Referenced By" list, once clicked
  var linkTries = 0;
  var tries = 0, stable = 0, lastShown = "";

  function finish(error) {
    result.error = error || null;
    document.getElementById("probe").textContent = JSON.stringify(result);
  }

  // The nodes and edges the graph shows, once they and the viewport have not changed for a
  // second (the graph is laid out and zoomed to fit in stages); null until then.
  function settledGraph(doc) {
    var container = doc.getElementById("cy");
    var cy = container && container._cyreg && container._cyreg.cy;  // the Cytoscape.js instance
    var shown = cy ? [cy.nodes(":visible").length, cy.edges(":visible").length,
                      cy.zoom().toFixed(3), cy.pan().x.toFixed(1), cy.pan().y.toFixed(1)].join("/") : "";
    stable = (shown && shown === lastShown) ? stable + 1 : 0;
    lastShown = shown;
    if (!cy || cy.nodes(":visible").length === 0 || stable < 5) { return null; }
    stable = 0;
    lastShown = "";
    return {
      nodes: cy.nodes(":visible").map(function (n) { return {id: n.id(), label: n.data("label")}; }),
      edges: cy.edges(":visible").map(function (e) { return [e.source().id(), e.target().id()]; })
    };
  }

  function step() {
    tries += 1;
    if (tries > 300) {
      var waited = !result.page ? "model page" : !result.fullscreen ? "graph"
                 : !exposureLink ? "export in the model's Referenced By list" : "export's page";
      return finish("timed out waiting for the " + waited);
    }
    try {
      var doc = frame.contentDocument;
      if (!result.page) {
        // the model page is rendered once its column list is there
        var text = doc && doc.body ? doc.body.innerText : "";
        var launcher = doc && doc.querySelector(".launcher-btn a");  // "View Lineage Graph"
        if (launcher && text.indexOf("line_total") >= 0) {
          result.page = {url: frame.contentWindow.location.href, text: text};
          launcher.click();
        }
      } else if (!result.sidebar) {
        result.sidebar = settledGraph(doc);
        if (result.sidebar) {
          doc.querySelector('.launcher-actions a[ng-click="showExpanded()"]').click();  // "View Fullscreen"
        }
      } else if (!result.fullscreen) {
        result.fullscreen = settledGraph(doc);
      } else if (!exposureLink) {
        // "Referenced By": one tab per kind of resource reading the model; "Exposures" lists the export
        // (the list is part of the model page, already rendered: a few tries are plenty)
        linkTries += 1;
        if (linkTries > 25) { return finish("the export is not in the Referenced By list of the model page"); }
        var referencedBy = doc.getElementById("referenced_by").parentNode;
        var tab = Array.prototype.find.call(referencedBy.querySelectorAll(".nav-tabs a"),
                                            function (a) { return a.textContent.trim() === "Exposures"; });
        if (tab) { tab.click(); }
        exposureLink = tab && referencedBy.querySelector('a[href$="/exposure/__EXPOSURE__"]');
        if (exposureLink) { exposureLink.click(); }
      } else {
        // the export's page is rendered once its "Depends On" list is there
        var dependsOn = doc.getElementById("depends_on");
        var links = dependsOn ? dependsOn.parentNode.querySelectorAll(".list-unstyled a") : [];
        var title = doc.querySelector(".app-title h1");
        if (frame.contentWindow.location.href.indexOf("/exposure/") >= 0 && links.length) {
          result.exposure = {
            url: frame.contentWindow.location.href,
            title: title ? title.innerText : "",
            text: doc.body.innerText,
            depends_on: Array.prototype.map.call(links, function (a) {
              return {name: a.textContent.trim(), href: a.getAttribute("href")};
            })
          };
          return finish();
        }
      }
    } catch (e) {
      return finish(String(e));
    }
    setTimeout(step, 200);
  }
  step();
</script>
</body>
</html>
""".replace("__MODEL__", MODEL).replace("__EXPOSURE__", EXPOSURE)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing: CI must install it (apt-get install chromium)")
    pytest.skip("chromium not installed: apt-get install chromium")


@pytest.fixture(scope="module")
def settings(project: Project) -> settings_mod.Settings:
    return project.settings


@pytest.fixture(scope="module")
def docs_site(project: Project, settings: settings_mod.Settings) -> Path:
    """Build a day (so the warehouse holds every relation the catalog describes), then generate
    the docs site as `make docs` does (`nwelt docs`, without serving it); return transform/target."""
    project.make("pipeline", "DATE=2024-01-01", check=True)
    generated = project.run(str(Path(sys.executable).with_name("nwelt")), "docs", "--generate-only")
    output = (generated.stdout + generated.stderr).strip().splitlines()
    assert generated.returncode == 0, "docs generation failed:\n" + "\n".join(output[-40:])
    return settings.root / "transform" / "target"


@pytest.fixture(scope="module")
def site_url(docs_site: Path) -> Iterator[str]:
    """Serve transform/target (plus the probe page) on a free port of 127.0.0.1."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == PROBE_PATH:
                body = PROBE_HTML.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(docs_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, str]  # unique id -> label shown
    edges: set[tuple[str, str]]  # (parent id, child id)


def _graph(shown: dict | None) -> Graph:
    assert shown, "the lineage graph was not shown"
    return Graph({n["id"]: n["label"] for n in shown["nodes"]}, {(a, b) for a, b in shown["edges"]})


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # needed as root and in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        # run the page's timers in virtual time until it is idle, at most 30 virtual seconds
        "--virtual-time-budget=30000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_docs_generate_writes_the_site(docs_site: Path) -> None:
    for name in ("index.html", "manifest.json", "catalog.json"):
        assert (docs_site / name).is_file(), f"{name} missing in {docs_site}"
    manifest = json.loads((docs_site / "manifest.json").read_text())
    assert MODEL in manifest["nodes"]
    assert set(manifest["parent_map"][MODEL]) == set(STAGING)
    catalog = json.loads((docs_site / "catalog.json").read_text())
    assert "line_total" in catalog["nodes"][MODEL]["columns"], "catalog.json lacks the mart's columns"
    # the export reads the mart: an exposure whose only parent is the mart
    assert EXPOSURE in manifest["exposures"], f"no exposure {EXPOSURE}: {sorted(manifest['exposures'])}"
    assert manifest["exposures"][EXPOSURE]["depends_on"]["nodes"] == [MODEL]
    assert EXPOSURE in manifest["child_map"][MODEL]


def test_model_page_shows_the_lineage_of_orders_details(site_url: str, settings: settings_mod.Settings, tmp_path: Path) -> None:
    _require_chromium()
    probe_url = site_url + PROBE_PATH

    dumped = _chromium(tmp_path, "--dump-dom", probe_url)
    assert dumped.returncode == 0, f"chromium failed ({dumped.returncode}): {dumped.stderr[-2000:]}"
    found = re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', dumped.stdout, re.S)
    assert found, "the probe page did not load:\n" + dumped.stdout[:2000]
    text = html.unescape(found.group(1))
    assert text.startswith("{"), f"the probe did not finish within the time budget: {text[:500]}"
    result = json.loads(text)

    artifacts = settings.root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    graphs = {"sidebar": result["sidebar"], "fullscreen": result["fullscreen"]}
    (artifacts / "docs-lineage-orders_details.json").write_text(json.dumps(graphs, indent=2) + "\n")
    assert result["error"] is None, result["error"]

    # the model page rendered: its name, relation, description and columns are on the page
    page = result["page"]
    assert page["url"].endswith(f"#!/model/{MODEL}")
    for text in ("orders_details", "marts.orders_details", "One row per order line", "line_total", "snapshot_date"):
        assert text in page["text"], f"{text!r} is not on the model page"

    # "View Lineage Graph": the mart and its direct neighbours, i.e. every staging model it reads
    # and the export that reads it
    sidebar = _graph(result["sidebar"])
    assert sidebar.nodes.get(MODEL) == "orders_details"
    for staging in STAGING:
        assert staging in sidebar.nodes, f"{staging} missing from the lineage graph: {sorted(sidebar.nodes)}"
        assert (staging, MODEL) in sidebar.edges, f"no edge {staging} -> {MODEL}"
    assert EXPOSURE in sidebar.nodes, f"the export is missing from the lineage graph: {sorted(sidebar.nodes)}"
    assert (MODEL, EXPOSURE) in sidebar.edges, f"no edge {MODEL} -> {EXPOSURE}"

    # "View Fullscreen": the whole lineage, from the raw sources of every staging model to the export
    full = _graph(result["fullscreen"])
    missing = [node for node in [MODEL, *STAGING, *SOURCES, EXPOSURE] if node not in full.nodes]
    assert not missing, f"not in the full lineage graph: {missing}; shown: {sorted(full.nodes)}"
    for table, staging, source in zip(TABLES, STAGING, SOURCES, strict=True):
        assert full.nodes[staging] == f"stg_northwind__{table}"
        assert full.nodes[source] == f"northwind.{table}"
        assert (source, staging) in full.edges, f"no edge {source} -> {staging}"
        assert (staging, MODEL) in full.edges, f"no edge {staging} -> {MODEL}"
    assert full.nodes[EXPOSURE] == EXPOSURE_LABEL
    assert (MODEL, EXPOSURE) in full.edges, f"no edge {MODEL} -> {EXPOSURE}"

    # the export's page, reached from the mart's "Referenced By" list: its label, name and owner,
    # the files it writes, and that it depends on the mart (a link back to the mart's page)
    exposure = result["exposure"]
    assert exposure["url"].split("?")[0].endswith(f"#!/exposure/{EXPOSURE}")  # ?g_v=1: the graph is still open
    assert EXPOSURE_LABEL in exposure["title"]
    files = ("data/output/D/orders_details.csv", "data/output/D/orders_details.json")
    for text in ("orders_details_export", "northwind-elt maintainers", "src/northwind_elt/export.py", *files):
        assert text in exposure["text"], f"{text!r} is not on the export's page"
    assert exposure["depends_on"] == [{"name": "orders_details", "href": f"#!/model/{MODEL}"}]

    # and a picture of it, for humans. `?g_v=1` is dbt docs' own link to a page with its lineage
    # graph open full screen (drawn without the expand animation, so the labels come out sharp).
    screenshot = artifacts / "docs-lineage-orders_details.png"
    screenshot.unlink(missing_ok=True)
    shot = _chromium(tmp_path, f"--screenshot={screenshot}", f"{site_url}/#!/model/{MODEL}?g_v=1")
    assert shot.returncode == 0, f"chromium screenshot failed: {shot.stderr[-2000:]}"
    assert screenshot.is_file() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000, "the screenshot looks empty"
