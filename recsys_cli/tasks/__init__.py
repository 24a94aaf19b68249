"""Task functions: `run(cfg) -> Result`. No Typer, no printing; the CLI wraps them."""
