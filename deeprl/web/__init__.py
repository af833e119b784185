"""The web app (`deeprl serve`): server-rendered leaderboard, model, progress pages and a JSON API under /api."""

from deeprl.web.app import create_app

__all__ = ["create_app"]
