"""tap-landing: the bridge from the landing folder to a Singer target."""
