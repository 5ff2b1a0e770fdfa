"""taskalign."""
