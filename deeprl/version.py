"""The package version, in a module of its own: the modules that record it (model files, cards, the web app, the
command line) import it from here, not from `deeprl`, whose lazy API (`deeprl.train`, `deeprl.load`, ...) imports
those same modules; importing the version from the package would make a cycle."""

__version__ = "0.1.0"
