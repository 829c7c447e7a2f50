"""The ``trustplane`` command: serve, worker, migrate, demo, token, and scriptable administration
(tenants, apps, tokens, keys). Every administrative command prints JSON with ``--json``."""

from __future__ import annotations

import asyncio
import gc
import json as jsonlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel

import trustplane.alerts.tasks  # noqa: F401  (every process that emits events queues their ingestion)
from trustplane.auth.keys import KeyStore
from trustplane.auth.ratelimit import parse_limit
from trustplane.auth.service import (
    authenticate_client,
    create_api_token,
    create_application,
    list_api_tokens,
    revoke_api_token,
)
from trustplane.auth.tokens import issue_access_token
from trustplane.bootstrap import ensure_ready
from trustplane.core.db import Database
from trustplane.core.errors import DomainError
from trustplane.core.events import Actor
from trustplane.core.migrate import upgrade
from trustplane.directory.models import Tenant
from trustplane.directory.repository import TenantLookup
from trustplane.discovery.cli import collector as discovery_collector
from trustplane.discovery.cli import discovery_cli
from trustplane.protection import ipintel
from trustplane.protection import service as protection
from trustplane.settings import Settings

app = typer.Typer(help="TrustPlane: a self-hosted Zero Trust control plane.", no_args_is_help=True)
apps_cli = typer.Typer(help="App registrations (client credentials).", no_args_is_help=True)
tokens_cli = typer.Typer(help="Long-lived API tokens (for SCIM and MCAS clients).", no_args_is_help=True)
tenants_cli = typer.Typer(help="Tenants.", no_args_is_help=True)
keys_cli = typer.Typer(help="Token signing keys.", no_args_is_help=True)
app.add_typer(apps_cli, name="apps")
app.add_typer(tokens_cli, name="tokens")
app.add_typer(tenants_cli, name="tenants")
app.add_typer(keys_cli, name="keys")
app.add_typer(discovery_cli, name="discovery")
app.command("collector")(discovery_collector)
protection_cli = typer.Typer(
    help="Identity protection: IP intelligence, threat intelligence, leaked credentials.",
    no_args_is_help=True,
)
app.add_typer(protection_cli, name="protection")

console = Console(stderr=True)
CLI_ACTOR = Actor(type="cli", id="cli", name="trustplane CLI")
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id or domain (default: the default tenant).")
]


def _settings() -> Settings:
    settings = Settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _run(fn: Callable[[Database, KeyStore], Awaitable[T]]) -> T:
    settings = _settings()

    async def main() -> T:
        db = Database(settings.effective_database_url)
        try:
            keys = KeyStore(settings.access_token_lifetime_seconds)
            admin = await ensure_ready(db, keys)
            if admin is not None:
                _print_admin(admin.tenant_id, admin.client_id, admin.client_secret)
            return await fn(db, keys)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc


def _emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    if as_json:
        typer.echo(jsonlib.dumps(data, indent=2, default=str))
    else:
        typer.echo(human)


def _print_admin(tenant_id: str, client_id: str, secret: str) -> None:
    console.print(
        Panel.fit(
            f"tenant id:      {tenant_id}\nclient id:      {client_id}\nclient secret:  {secret}\n\n"
            "This secret is shown once. Store it now; it is kept only as an argon2id hash.",
            title="TrustPlane admin app created",
        )
    )


async def _tenant(db: Database, key: str | None) -> Tenant:
    async with db.read_session() as session:
        lookup = TenantLookup(session)
        tenant = await (lookup.by_id_or_domain(key) if key else lookup.default())
    if tenant is None:
        console.print(f"[red]error:[/red] tenant '{key}' not found")
        raise typer.Exit(2)
    return tenant


# Generation-0 collections per allocation: Python's default (700) runs one every few requests under load.
GC_THRESHOLD_0 = 7000


def tune_gc() -> None:
    """For a long-running server: move everything alive after start-up (modules, models, routes, the
    SQLAlchemy and pydantic machinery) out of the collector's sight, so a full collection no longer walks
    it, and collect the young generation ten times less often. A request allocates many short-lived
    objects, nearly all freed by reference counting; with 32 requests in flight this measured 6-15 % less
    CPU per request than the defaults (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="Seed the demo data set into the default tenant if it is empty.")
    ] = False,
) -> None:
    """Run the API server (migrates and bootstraps the database first)."""
    import uvicorn

    from trustplane.app import create_app

    settings = _settings()

    async def prepare() -> None:
        db = Database(settings.effective_database_url)
        try:
            keys = KeyStore(settings.access_token_lifetime_seconds)
            admin = await ensure_ready(db, keys)
            if admin is not None:
                _print_admin(admin.tenant_id, admin.client_id, admin.client_secret)
            if demo:
                await _seed(db)
        finally:
            await db.dispose()

    asyncio.run(prepare())
    where = settings.database_url.split("@")[-1] if settings.database_url else settings.effective_database_url
    console.print(f"TrustPlane listening on http://{host}:{port}  (database: {where})")
    application = create_app(settings)
    tune_gc()
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def worker(
    worker_id: Annotated[str | None, typer.Option(help="Name of this worker (default host:pid).")] = None,
) -> None:
    """Run a job worker against the configured database (any number may run on PostgreSQL)."""
    import trustplane.directory.audit  # noqa: F401  (registers handlers)
    from trustplane.core.jobs import run_worker
    from trustplane.core.observability import configure_logging
    from trustplane.discovery import tasks as _discovery_tasks  # noqa: F401  (registers its handler)
    from trustplane.protection import tasks as _protection_tasks  # noqa: F401  (registers its handlers)

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)

    async def main() -> None:
        db = Database(settings.effective_database_url)
        await upgrade(db.engine)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_worker(
                db,
                worker_id=worker_id,
                lease_seconds=settings.job_lease_seconds,
                poll_seconds=settings.job_poll_seconds,
                stop=stop,
            )
        finally:
            await db.dispose()

    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Apply database migrations (and create the default tenant on a new database)."""

    async def done(db: Database, keys: KeyStore) -> None:
        console.print("database is at the latest revision")

    _run(done)


async def _seed(db: Database, tenant_key: str | None = None, users: int = 300) -> int:
    from trustplane.directory.demo import seed_demo

    tenant = await _tenant(db, tenant_key)
    async with db.session() as session:
        made = await seed_demo(session, tenant.id, tenant.domain, users=users)
    if made:
        console.print(f"seeded {made} demo users in nested groups into tenant {tenant.domain}")
    return made


@app.command()
def demo(
    tenant: TenantOpt = None,
    users: Annotated[int, typer.Option(help="How many users to create.")] = 300,
) -> None:
    """Seed the demo data set (a few hundred users in nested groups) into an empty tenant."""

    async def run(db: Database, keys: KeyStore) -> None:
        if not await _seed(db, tenant, users):
            console.print("the tenant already has users; nothing seeded")

    _run(run)


@app.command()
def token(
    client_id: Annotated[str, typer.Option(help="The app's client id.")],
    client_secret: Annotated[
        str, typer.Option(help="The app's client secret.", envvar="TRUSTPLANE_CLIENT_SECRET")
    ],
    tenant: TenantOpt = None,
    url: Annotated[
        str, typer.Option(help="The server's base URL the token will be presented to.")
    ] = "http://127.0.0.1:8000",
    audience: Annotated[str, typer.Option(help="The token's audience.")] = "https://graph.microsoft.com",
    as_json: JsonOpt = False,
) -> None:
    """Issue an access token for an app (client credentials checked against the database)."""

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        settings = _settings()
        row = await _tenant(db, tenant)
        async with db.session() as session:
            application = await authenticate_client(session, row.id, client_id, client_secret)
            access = await issue_access_token(
                session,
                keys,
                issuer_base=settings.public_url or url,
                tenant_id=row.id,
                audience=audience,
                subject=application.id,
                client_id=application.app_id,
                name=application.display_name,
                roles=list(application.permissions),
                lifetime_seconds=settings.access_token_lifetime_seconds,
            )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": settings.access_token_lifetime_seconds,
        }

    result = _run(run)
    _emit(as_json, result, result["access_token"])


@tenants_cli.command("create")
def tenants_create(
    name: Annotated[str, typer.Option(help="Display name.")],
    domain: Annotated[str, typer.Option(help="Primary domain, unique.")],
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant."""
    from trustplane.directory.service import create_tenant

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        async with db.session() as session:
            tenant = await create_tenant(session, keys, name=name, domain=domain)
        return {"tenant_id": tenant.id, "name": tenant.name, "domain": tenant.domain}

    result = _run(run)
    _emit(as_json, result, f"tenant {result['domain']} created: {result['tenant_id']}")


@apps_cli.command("create")
def apps_create(
    name: Annotated[str, typer.Option(help="Display name of the app.")],
    permission: Annotated[list[str], typer.Option(help="An app permission (Graph name); repeat for more.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an app with app permissions; prints its client id and secret (shown once)."""

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        row = await _tenant(db, tenant)
        async with db.session() as session:
            issued = await create_application(session, row.id, CLI_ACTOR, name=name, permissions=permission)
        return {
            "tenant_id": issued.tenant_id,
            "client_id": issued.client_id,
            "client_secret": issued.client_secret,
            "permissions": issued.permissions,
        }

    result = _run(run)
    _emit(
        as_json,
        result,
        f"tenant id:     {result['tenant_id']}\nclient id:     {result['client_id']}\n"
        f"client secret: {result['client_secret']}   (shown once)",
    )


@apps_cli.command("create-sso")
def apps_create_sso(
    name: Annotated[str, typer.Option(help="Display name of the app (shown on the consent page).")],
    redirect_uri: Annotated[
        list[str], typer.Option(help="A redirect URI, matched exactly (also post-logout); repeat for more.")
    ],
    public: Annotated[
        bool, typer.Option(help="A public client (SPA, native): no secret, PKCE required.")
    ] = False,
    admin_consent: Annotated[
        bool, typer.Option(help="Consent for every user of the tenant (profile, email): no consent page.")
    ] = False,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an app that users sign in to (OpenID Connect, authorization code with PKCE)."""
    from trustplane.idp.oauth.service import grant_admin_consent, register_client

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        row = await _tenant(db, tenant)
        async with db.session() as session:
            issued = await register_client(
                session, row.id, CLI_ACTOR, name=name, redirect_uris=redirect_uri, public=public
            )
            if admin_consent:
                await grant_admin_consent(
                    session, row.id, CLI_ACTOR, issued.application_id, ["profile", "email"]
                )
        return {
            "tenant_id": row.id,
            "client_id": issued.client_id,
            "client_secret": issued.client_secret,
            "redirect_uris": redirect_uri,
            "public": public,
        }

    result = _run(run)
    secret = result["client_secret"] or "(none: a public client)"
    _emit(
        as_json,
        result,
        f"tenant id:     {result['tenant_id']}\nclient id:     {result['client_id']}\n"
        f"client secret: {secret}   (shown once)",
    )


@tokens_cli.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="A name that says who uses the token.")],
    permission: Annotated[list[str], typer.Option(help="A permission; repeat for more.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    scim_dialect: Annotated[
        str,
        typer.Option(help="The SCIM client's dialect: 'rfc' (strict, default) or 'entra' (Entra ID)."),
    ] = "rfc",
    rate_limit: Annotated[
        str | None,
        typer.Option(
            help="This token's own rate limit, e.g. '30/minute' (default TRUSTPLANE_API_RATE_LIMIT)."
        ),
    ] = None,
) -> None:
    """Create a long-lived API token (shown once; usable as 'Bearer' or 'Token')."""
    if scim_dialect not in ("rfc", "entra"):
        raise typer.BadParameter("--scim-dialect must be 'rfc' or 'entra'.")
    settings: dict[str, object] = {"scim_dialect": scim_dialect} if scim_dialect != "rfc" else {}
    if rate_limit is not None:
        try:
            parse_limit(rate_limit)
        except ValueError as exc:
            raise typer.BadParameter("--rate-limit takes e.g. '30/minute' or '1000 per hour'.") from exc
        settings["rate_limit"] = rate_limit

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        row = await _tenant(db, tenant)
        async with db.session() as session:
            issued = await create_api_token(
                session, row.id, CLI_ACTOR, name=name, permissions=permission, settings=settings
            )
        return {
            "id": issued.id,
            "tenant_id": issued.tenant_id,
            "name": issued.name,
            "token": issued.token,
            "permissions": issued.permissions,
        }

    result = _run(run)
    _emit(as_json, result, result["token"])


@tokens_cli.command("list")
def tokens_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """List API tokens (never their secrets)."""

    async def run(db: Database, keys: KeyStore) -> list[dict[str, Any]]:
        row = await _tenant(db, tenant)
        async with db.read_session() as session:
            return [
                {
                    "id": t.id,
                    "name": t.name,
                    "permissions": t.permissions,
                    "created_at": t.created_at,
                    "revoked_at": t.revoked_at,
                }
                for t in await list_api_tokens(session, row.id)
            ]

    rows = _run(run)
    if as_json:
        typer.echo(jsonlib.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            state = "revoked" if r["revoked_at"] else "active"
            typer.echo(f"{r['id']}  {state:8} {r['name']}  {' '.join(r['permissions'])}")


@tokens_cli.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id.")], tenant: TenantOpt = None
) -> None:
    """Revoke an API token; it stops working at once."""

    async def run(db: Database, keys: KeyStore) -> None:
        row = await _tenant(db, tenant)
        async with db.session() as session:
            await revoke_api_token(session, row.id, CLI_ACTOR, token_id)

    _run(run)
    console.print(f"token {token_id} revoked")


@keys_cli.command("rotate")
def keys_rotate(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Start signing with a new key; the old one stays published until its tokens expire."""

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        row = await _tenant(db, tenant)
        async with db.session() as session:
            kid = await keys.rotate(session, row.id)
        return {"tenant_id": row.id, "kid": kid}

    result = _run(run)
    _emit(as_json, result, f"new signing key {result['kid']}")


# ---------------------------------------------------------------- identity protection


@protection_cli.command("load-ip-data")
def protection_load_ip_data(
    file: Annotated[
        Path, typer.Argument(help="CSV of address ranges: first,last,value (a header is allowed).")
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="'asn' or 'country' (overrides the packaged data).")
    ] = "asn",
    as_json: JsonOpt = False,
) -> None:
    """Load a newer IP-to-ASN or IP-to-country range file the admin supplies (read at server start)."""
    settings = _settings()
    try:
        count = ipintel.install(settings.data_dir / ipintel.DATA_SUBDIR, file, kind)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _emit(
        as_json,
        {"kind": kind, "ranges": count},
        f"loaded {count} {kind} ranges; restart the server to use them",
    )


@protection_cli.command("import-leaked")
def protection_import_leaked(
    file: Annotated[
        Path, typer.Argument(help="SHA-1 password hashes, one a line (HIBP's HASH:COUNT is fine).")
    ],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import leaked-password SHA-1 hashes; sign-ins with such a password raise leakedCredentials."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc

    async def run(db: Database, keys: KeyStore) -> int:
        found = await _tenant(db, tenant)
        async with db.session() as session:
            return await protection.import_leaked_hashes(session, found.id, CLI_ACTOR, lines)

    added = _run(run)
    _emit(as_json, {"added": added}, f"{added} new leaked-password hashes")


@protection_cli.command("threat-intel")
def protection_threat_intel(
    ranges: Annotated[list[str], typer.Argument(help="IP addresses or CIDR ranges.")],
    kind: Annotated[str, typer.Option("--kind", help="'malicious' or 'anonymizer'.")] = "malicious",
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add addresses to the tenant's malicious-IP or anonymiser list."""

    async def run(db: Database, keys: KeyStore) -> int:
        found = await _tenant(db, tenant)
        async with db.session() as session:
            return await protection.add_threat_intel(session, found.id, CLI_ACTOR, kind, ranges)

    added = _run(run)
    _emit(as_json, {"kind": kind, "ranges": added}, f"{added} {kind} ranges listed")


@protection_cli.command("age-out")
def protection_age_out(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute users whose low risk is older than 180 days (run daily; decisions already ignore it)."""

    async def run(db: Database, keys: KeyStore) -> int:
        found = await _tenant(db, tenant)
        async with db.session() as session:
            return await protection.age_out(session, found.id)

    changed = _run(run)
    _emit(as_json, {"changed": changed}, f"{changed} users' low risk aged out")


signin_cli = typer.Typer(
    help="Sign-in: passwords, passkey attestation policy, smart lockout.", no_args_is_help=True
)
app.add_typer(signin_cli, name="signin")


@signin_cli.command("policy")
def signin_policy(
    allow_aaguid: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-aaguid", help="An authenticator model (AAGUID) allowed to register; repeatable."
        ),
    ] = None,
    default_authenticators: Annotated[
        bool, typer.Option("--default-authenticators", help="Back to the shipped list of security keys.")
    ] = False,
    any_authenticator: Annotated[
        bool, typer.Option("--any-authenticator", help="Allow every authenticator model.")
    ] = False,
    lockout_threshold: Annotated[
        int | None, typer.Option("--lockout-threshold", help="Failed passwords before a lockout.")
    ] = None,
    lockout_seconds: Annotated[
        int | None, typer.Option("--lockout-seconds", help="The first lockout's length (doubles each time).")
    ] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or change the tenant's sign-in policy (passkey models allowed, smart lockout)."""
    from trustplane.idp.signin import service as signin

    async def run(db: Database, keys: KeyStore) -> dict[str, Any]:
        found = await _tenant(db, tenant)
        async with db.session() as session:
            policy = await signin.set_policy(
                session,
                found.id,
                allowed_aaguids=[] if any_authenticator else allow_aaguid,
                lockout_threshold=lockout_threshold,
                lockout_seconds=lockout_seconds,
                default_aaguids=default_authenticators,
            )
            return {
                "allowedAaguids": policy.allowed_aaguids,
                "lockoutThreshold": policy.lockout_threshold,
                "lockoutSeconds": policy.lockout_seconds,
            }

    shown = _run(run)
    models = shown["allowedAaguids"]
    which = "the default security keys" if models is None else ("any" if not models else ", ".join(models))
    _emit(
        as_json,
        shown,
        f"passkeys: {which}; lockout after {shown['lockoutThreshold']} failures, "
        f"{shown['lockoutSeconds']} s at first",
    )


@signin_cli.command("set-password")
def signin_set_password(
    user: Annotated[str, typer.Argument(help="The user's id or userPrincipalName.")],
    force_change: Annotated[
        bool, typer.Option("--force-change/--no-force-change", help="Ask for a new password at next sign-in.")
    ] = True,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a user's password (asked for twice, never on the command line); stored argon2id-hashed."""
    from trustplane.directory import service as directory

    secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def run(db: Database, keys: KeyStore) -> str:
        found = await _tenant(db, tenant)
        async with db.session() as session:
            target = await directory.get_user_by_id_or_upn(session, found.id, user)
            await directory.update_user(
                session,
                found.id,
                CLI_ACTOR,
                target.id,
                {"force_change_password": force_change},
                password=secret,
            )
            return target.user_principal_name

    upn = _run(run)
    _emit(as_json, {"userPrincipalName": upn, "forceChangePassword": force_change}, f"password set for {upn}")


if __name__ == "__main__":
    app()
