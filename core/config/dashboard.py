"""The Streamlit dashboard: address, port and the users who may sign in."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.config.base import Section

Role = Literal["viewer", "lead"]


class DashboardUser(Section):
    """One person who may sign in: a role and a password hash (`tollgate dashboard hash-password`)."""

    role: Role = "viewer"
    password_hash: str = Field(description="scrypt$n$r$p$salt$key as printed by `tollgate dashboard hash-password`")

    @field_validator("password_hash")
    @classmethod
    def _looks_hashed(cls, value: str) -> str:
        # A plain password pasted here would otherwise fail every sign-in without saying why.
        if not value.startswith(("scrypt$", "pbkdf2_sha256$")):
            raise ValueError("password_hash must come from `tollgate dashboard hash-password`, not a plain password")
        return value


class SignInLimits(Section):
    """How failed sign-ins are throttled, per user name and per client address."""

    max_failures: int = Field(default=5, ge=1, description="Failed sign-ins allowed within window_s before a lockout")
    window_s: float = Field(default=60.0, gt=0, description="The window failed sign-ins are counted in")
    lockout_s: float = Field(default=60.0, gt=0, description="The first lockout; each further one doubles")
    max_lockout_s: float = Field(default=3600.0, gt=0, description="The longest lockout")
    forget_after_s: float = Field(default=86400.0, gt=0, description="A name or address quiet this long starts over")


class DashboardSettings(Section):
    """The Streamlit dashboard: address, port and the users who may sign in."""

    address: str = "127.0.0.1"
    port: int = Field(default=8501, ge=0, le=65535)
    users: dict[str, DashboardUser] = Field(
        default_factory=dict, description="user name -> role and password hash; nobody can sign in when empty"
    )
    page_rows: int = Field(default=50, ge=5, le=1000, description="rows per page in the traffic and review tables")
    sign_in: SignInLimits = Field(default_factory=SignInLimits, description="Throttling of failed sign-ins")
