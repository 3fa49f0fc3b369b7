"""Cross-checks against other tools (RooFit/RooStats), apart from the product; optional dependencies."""
