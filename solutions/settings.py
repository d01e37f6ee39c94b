"""Settings shared by the receiver, the workers and the kit's tools.

Values come from the environment, and from a `.env` file through python-dotenv
(the environment wins). See `.env.example` for every setting.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import find_dotenv, load_dotenv

from solutions.signatures import METHODS

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_METHOD = "md5hash"


class SettingsError(ValueError):
    """A setting has a value the kit cannot use. The message says which, and what to do."""


@dataclass(frozen=True)
class Settings:
    """The kit's settings. `signature_secret` is empty when messages are unsigned."""

    redis_url: str
    signature_secret: str
    signature_method: str
    messages_file: Path

    def __repr__(self) -> str:  # never print the secret
        secret = "***" if self.signature_secret else "(none)"
        return (
            f"Settings(redis_url={self.redis_url!r}, signature_secret={secret}, "
            f"signature_method={self.signature_method!r}, messages_file='{self.messages_file}')"
        )


def env_flag(name: str, default: bool) -> bool:
    """An on/off setting from the environment: 0, false, no and off turn it off; unset keeps `default`."""
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


def load_settings() -> Settings:
    """Read the settings from the environment, after loading `.env` if there is one.

    Raises SettingsError for a value the kit cannot use, so a typo stops a command
    at its start rather than failing every job.
    """
    load_dotenv(find_dotenv(usecwd=True), override=False)
    settings = Settings(
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        signature_secret=os.environ.get("SIGNATURE_SECRET", ""),
        signature_method=(os.environ.get("SIGNATURE_METHOD") or DEFAULT_METHOD).strip().lower(),
        messages_file=Path(os.environ.get("MESSAGES_FILE") or "messages.jsonl").resolve(),
    )
    if settings.signature_method not in METHODS:
        raise SettingsError(f"SIGNATURE_METHOD={settings.signature_method!r} is not one of {', '.join(METHODS)}: "
                            "set it to the method in your Vonage dashboard's settings, in .env or the environment")
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    return settings
