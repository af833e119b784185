"""deeprl: the Hugging Face Deep RL Course as one offline Python package and command."""

__version__ = "0.1.0"
