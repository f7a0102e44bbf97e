"""The bodies of the API, as pydantic models: what a call accepts and what it answers.

Request models refuse unknown fields (``extra="forbid"``) and coerce nothing
(``strict=True``: ``"1"`` is not a level, ``1`` is not ``true``), so a client's mistake is
a 422 naming the field, never a guess. Every string must be text every store can keep (no
NUL, no lone surrogate), and session data nests at most ``MAX_DEPTH`` levels, so nothing a
client sends can fail later inside a store as a 5xx.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.json_schema import SkipJsonSchema

from coatcheck.core.atomic import SAFE_INT
from coatcheck.service.settings import JWT_MAX_TTL

MAX_DEPTH: Final = 32
"""Deepest nesting of lists and objects in session data."""


def storable_text(value: str) -> str:
    """``value`` when every store can keep it: UTF-8 encodable (no lone surrogate, which
    JSON's ``\\ud800`` escape can produce) and without NUL (PostgreSQL refuses it)."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (a lone surrogate is not)") from None
    return value


def _check_value(value: Any, depth: int) -> None:
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise ValueError(f"session data may nest at most {MAX_DEPTH} levels")
        for key, item in value.items():
            storable_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise ValueError(f"session data may nest at most {MAX_DEPTH} levels")
        for item in value:
            _check_value(item, depth + 1)


def storable_data(data: dict[str, Any]) -> dict[str, Any]:
    _check_value(data, 0)
    return data


def json_integer(value: Any) -> Any:
    """JSON has one number type: ``2.0`` is the integer 2 (as JSON Schema says), while
    ``2.5``, ``"2"`` and ``true`` stay what they are and fail the strict integer check."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def no_null(value: Any) -> Any:
    if value is None:
        raise ValueError("null is not a value here: leave the field out")
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


T = TypeVar("T")
Omittable = Annotated[
    T | SkipJsonSchema[None],
    BeforeValidator(no_null),
    Field(default=None, json_schema_extra=_no_default),
]
"""An optional field: leave it out, never send ``null`` (the document says so too)."""

Text = Annotated[str, AfterValidator(storable_text)]
UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(storable_text)
]
SessionToken = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
"""An end user's token as the caller holds it; any shape is accepted here, and one that
names no live session is answered as such (404, or ``active: false``)."""
Level = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(json_integer)]
Data = Annotated[dict[str, Any], AfterValidator(storable_data)]
DataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(storable_text)
]


CSRF_FIELD: Final = (
    "true: the session gets a CSRF secret if it has none, and the answer's session view "
    "its csrf_token"
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Client(Body):
    """The end user's client, as the caller saw it (recorded for "your devices")."""

    ip: Omittable[Annotated[Text, StringConstraints(max_length=64)]]
    user_agent: Omittable[Annotated[Text, StringConstraints(max_length=1024)]]
    gpc: Omittable[
        Annotated[bool, Field(description="The client sent Sec-GPC: 1 (Global Privacy Control)")]
    ]


class CreateSession(Body):
    """``level`` and ``remember`` describe a login, so they need ``user_id``."""

    model_config = ConfigDict(
        json_schema_extra={"dependentRequired": {"level": ["user_id"], "remember": ["user_id"]}}
    )

    user_id: Omittable[UserId]
    data: Omittable[Data]
    remember: Omittable[bool]
    level: Omittable[Level]
    client: Omittable[Client]
    csrf: Omittable[Annotated[bool, Field(description=CSRF_FIELD)]]


class Introspect(Body):
    token: SessionToken
    touch: bool = True
    client: Omittable[Client]


SafeInteger = Annotated[int, Field(ge=-SAFE_INT, le=SAFE_INT), BeforeValidator(json_integer)]
"""An integer within the atomic operations' range (``coatcheck.core.atomic.SAFE_INT``)."""


def storable_value(value: Any) -> Any:
    _check_value(value, 1)
    return value


Value = Annotated[Any, AfterValidator(storable_value)]
SetMember = Annotated[
    Text | SafeInteger | bool | None,
    Field(description="A string, a safe integer, a bool or null: what set membership compares"),
]


class Incr(Body):
    """Add ``by`` to the integer under ``key`` (missing: 0), in the store."""

    op: Literal["incr"]
    key: DataKey
    by: SafeInteger = 1


class Append(Body):
    """Add ``value`` at the end of the list under ``key`` (missing: []), in the store."""

    op: Literal["append"]
    key: DataKey
    value: Value


class AddToSet(Body):
    """``append``, unless the list already holds a value equal to ``value``."""

    op: Literal["add_to_set"]
    key: DataKey
    value: SetMember


Operation = Annotated[Incr | Append | AddToSet, Field(discriminator="op")]

MAX_OPERATIONS: Final = 1000
"""Operations in one update call at most."""


class Update(Body):
    token: SessionToken
    set: Omittable[Data]
    unset: Omittable[list[DataKey]]
    ops: Omittable[
        Annotated[
            list[Operation],
            Field(
                max_length=MAX_OPERATIONS,
                description=(
                    "Atomic operations, applied by the store to the value it holds when "
                    "the update lands: concurrent updates of the same key all count"
                ),
            ),
        ]
    ]
    csrf: Omittable[Annotated[bool, Field(description=CSRF_FIELD)]]


class Login(Body):
    token: SessionToken
    user_id: UserId
    level: Omittable[Level]
    remember: Omittable[bool]


class TokenOnly(Body):
    token: SessionToken


ConsentCategory = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
ConsentMethod = Literal["accept_all", "reject_all", "custom", "gpc", "api"]


class Consent(Body):
    """A consent choice for the session ``token`` names. ``accept_all`` and
    ``reject_all`` without ``grant`` or ``deny`` cover every category; ``gpc`` records the
    Global Privacy Control signal (a refusal of analytics and marketing)."""

    token: SessionToken
    grant: Omittable[Annotated[list[ConsentCategory], Field(max_length=64)]]
    deny: Omittable[Annotated[list[ConsentCategory], Field(max_length=64)]]
    method: ConsentMethod


class MakeJwt(Body):
    token: SessionToken
    audience: Omittable[Annotated[Text, StringConstraints(min_length=1, max_length=256)]]
    ttl: Omittable[Annotated[int, Field(ge=1, le=JWT_MAX_TTL), BeforeValidator(json_integer)]]


# -- answers -------------------------------------------------------------------------------
class SessionView(BaseModel):
    """One session as the API shows it. Times are seconds since the epoch."""

    handle: str = Field(description="Public identifier: safe in logs and UIs, not a credential")
    user_id: str | None
    level: int = Field(description="Assurance level of the login; 0 when anonymous")
    data: dict[str, Any]
    created_at: float
    last_seen_at: float = Field(description="Last activity the store recorded")
    expires_at: float = Field(description="The deadline in force (idle or absolute)")
    absolute_at: float = Field(description="The session ends then, however busy")
    remember: bool
    consent: ConsentView
    csrf_token: str | SkipJsonSchema[None] = Field(
        default=None,
        description="Present only when the session has a CSRF secret: a token masked "
        "afresh for this answer, as the Python edges render them",
    )


class ConsentView(BaseModel):
    """The session's consent: every category and whether it is allowed, and the choice."""

    categories: dict[str, bool]
    revision: int = Field(description="The policy revision the choice was made under")
    at: float | None = Field(description="When the choice was made; null: no choice yet")
    method: ConsentMethod | None
    gpc: bool = Field(description="Global Privacy Control was honoured in this session")
    needs_prompt: bool = Field(description="Ask the visitor (no choice, or an older revision)")


class Issued(BaseModel):
    token: str = Field(description="The end user's new session token")
    session: SessionView


class Updated(BaseModel):
    session: SessionView
    token: str | SkipJsonSchema[None] = Field(
        default=None, description="Present only when the token rotated: the client's new token"
    )


class Active(BaseModel):
    active: Literal[True]
    session: SessionView
    token: str | SkipJsonSchema[None] = Field(
        default=None, description="Present only when the token rotated: the client's new token"
    )


class Inactive(BaseModel):
    active: Literal[False]


class Jwt(BaseModel):
    jwt: str
    expires_at: int = Field(description="The JWT's exp claim")


class Device(BaseModel):
    handle: str
    created_at: float
    last_seen_at: float
    expires_at: float
    auth_at: float | None
    remember: bool
    user_agent: str | None
    ip: str | None = Field(description="Truncated to its network (/24, /48)")


class Devices(BaseModel):
    sessions: list[Device]


class Revoked(BaseModel):
    revoked: int


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | SkipJsonSchema[None] = None
    errors: list[dict[str, Any]] | SkipJsonSchema[None] = None


class Gpc(BaseModel):
    """``/.well-known/gpc.json``, as the GPC specification writes it."""

    gpc: Literal[True]
    last_update: str = Field(alias="lastUpdate", description="YYYY-MM-DD")


class Health(BaseModel):
    status: str


REQUESTS: Final = (Client, CreateSession, Introspect, Update, Login, TokenOnly, MakeJwt)
FIELD_NAMES: Final = frozenset(
    name for model in REQUESTS for name in model.model_fields
) | frozenset({"user_id", "handle", "except"})
"""Every name a request may use, for the locations of validation errors."""
