"""City folders shipped with voirie (each holds a city.yaml, its layers and licence)."""
