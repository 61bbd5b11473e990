"""Settings sections, one module per capability; `core.settings.Settings` assembles them."""
