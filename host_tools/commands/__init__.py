"""`phonelab` subcommands, one module each: argparse here, the work in plain functions
elsewhere (host_tools.cli lists them)."""
