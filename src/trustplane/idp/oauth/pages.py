"""The authorization server's own browser pages: an error page (a bad client or redirect URI is shown, never
redirected), the consent page, the sign-out confirmation and the signed-out page. Server-rendered,
autoescaped, no external assets; every form carries a CSRF token bound to the browser session."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %} · TrustPlane</title></head>
<body><main>{% block main %}{% endblock %}</main></body></html>"""

_TEMPLATES = {
    "layout.html": _LAYOUT,
    "error.html": """{% extends "layout.html" %}{% block title %}Sign-in error{% endblock %}{% block main %}
<h1>Sorry, this sign-in request cannot be completed</h1>
<p role="alert">{{ message }}</p>
<p>Error: <code>{{ error }}</code>. Request id: <code>{{ request_id }}</code>.</p>
<p>Tell the owner of the application that sent you here.</p>
{% endblock %}""",
    "consent.html": """{% extends "layout.html" %}{% block title %}Permissions requested{% endblock %}
{% block main %}
<h1>Permissions requested</h1>
<p><strong>{{ app_name }}</strong> wants to:</p>
<ul>{% for item in scopes %}<li>{{ item }}</li>{% endfor %}</ul>
<p>Signed in as {{ user_name }}.</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="request" value="{{ request_query }}">
<button type="submit" name="decision" value="allow">Accept</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
{% endblock %}""",
    "logout.html": """{% extends "layout.html" %}{% block title %}Sign out{% endblock %}{% block main %}
<h1>Sign out?</h1>
<p>Do you want to sign out of TrustPlane{% if app_name %} and {{ app_name }}{% endif %}?</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
{% for name, value in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<button type="submit">Sign out</button>
</form>
{% endblock %}""",
    "signed_out.html": """{% extends "layout.html" %}{% block title %}Signed out{% endblock %}{% block main %}
<h1>You have signed out</h1>
<p>You can close this window.</p>
{% endblock %}""",
}

_ENV = Environment(loader=DictLoader(_TEMPLATES), autoescape=select_autoescape(default=True))
HEADERS = {
    "Content-Security-Policy": (
        # no form-action: Chromium applies it to the redirects after a submit (consent -> the app)
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def render(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=status, headers=HEADERS)


def error_page(error: str, message: str, *, status: int = 400, request_id: str = "") -> HTMLResponse:
    return render("error.html", status=status, error=error, message=message, request_id=request_id)


def csrf_for(session_secret_hash: str, purpose: str) -> str:
    """A form token only the holder of the session cookie can know (keyed by the session's stored hash,
    which never leaves the server), bound to what the form does."""
    return hmac.new(session_secret_hash.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def csrf_ok(session_secret_hash: str, purpose: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_for(session_secret_hash, purpose), sent or "")


def with_params(uri: str, params: dict[str, str | None]) -> str:
    """``uri`` (a registered redirect URI, which may carry a query of its own) with parameters added."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def redirect(url: str, *, status: int = 302) -> RedirectResponse:
    return RedirectResponse(
        url, status_code=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
