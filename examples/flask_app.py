"""A small Flask shop on coatcheck: a visit counter, a cart, login / logout and flashes.

Everything is plain Flask (``flask.session``, ``flash``, ``session.permanent``); coatcheck
adds server-side storage, the token rotation at login, idle and absolute timeouts,
``login`` / ``logout`` / ``@login_required`` / ``@require_recent_auth``, and the CSRF check
of every POST: each form carries ``{{ csrf_token() }}`` in a hidden ``csrf_token`` field.

Run it::

    pip install "coatcheck[flask]"
    python examples/flask_app.py            # http://localhost:5000

The store comes from ``COATCHECK_STORE`` (default ``sqlite:///flask-example.db``) and the
timeouts from ``COATCHECK_*`` variables (see ``SessionConfig.from_env``). The session
cookie is ``__Host-session`` (Secure): browsers accept it on http://localhost, and in
production the app runs behind HTTPS. Sign in as alice / wonderland or bob / builder.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Flask, flash, jsonify, redirect, render_template_string, request, url_for
from werkzeug.wrappers import Response

from coatcheck import SessionConfig, SessionManager
from coatcheck.integrations.flask import (
    current_session,
    init_app,
    login_required,
    require_recent_auth,
)
from coatcheck.stores import from_url

USERS = {"alice": "wonderland", "bob": "builder"}
"""Demo accounts. A real app stores password hashes (argon2, scrypt), never passwords."""

PRODUCTS = {"tea": "Green tea", "mug": "Enamel mug", "scarf": "Wool scarf"}

PAGE = """<!doctype html>
<title>coatcheck + Flask</title>
<h1>coatcheck + Flask</h1>
{% for category, message in get_flashed_messages(with_categories=true) %}
  <p class="flash {{ category }}">{{ message }}</p>
{% endfor %}
<p>Visits: <span id="visits">{{ visits }}</span></p>
{% if user %}
  <p>Signed in as <strong id="user">{{ user }}</strong>
    {%- if remembered %} (remembered){% endif %}.</p>
  <form method="post" action="{{ url_for('logout') }}">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <button>Sign out</button>
  </form>
{% else %}
  <form method="post" action="{{ url_for('login') }}">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <input name="username" placeholder="alice"> <input name="password" type="password">
    <label><input type="checkbox" name="remember" value="1"> Remember me</label>
    <button>Sign in</button>
  </form>
{% endif %}
<h2>Cart</h2>
<ul id="cart">{% for item in cart %}<li>{{ products[item] }}</li>{% endfor %}</ul>
{% for key, name in products.items() %}
  <form method="post" action="{{ url_for('add_to_cart') }}" style="display:inline">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <button name="item" value="{{ key }}">Add {{ name }}</button>
  </form>
{% endfor %}
"""


def create_app(manager: SessionManager | None = None) -> Flask:
    """The app; tests pass their own manager (store, clock), ``__main__`` builds one."""
    if manager is None:
        store = from_url(os.environ.get("COATCHECK_STORE", "sqlite:///flask-example.db"))
        manager = SessionManager(store, SessionConfig.from_env())
    app = Flask(__name__)
    init_app(app, manager)

    @app.get("/")
    def index() -> str:
        session = current_session()
        # Counting visits writes on every page view; reading the cart alone writes nothing.
        session["visits"] = session.get("visits", 0) + 1
        return render_template_string(
            PAGE,
            visits=session["visits"],
            user=session.user_id,
            remembered=session.permanent,
            cart=session.get("cart", []),
            products=PRODUCTS,
        )

    @app.post("/cart")
    def add_to_cart() -> Response:
        item = request.form.get("item", "")
        if item not in PRODUCTS:
            flash("No such product.", "error")
        else:
            # In-place change: coatcheck sees it without session.modified = True.
            current_session().setdefault("cart", []).append(item)
            flash(f"{PRODUCTS[item]} added to your cart.", "info")
        return redirect(url_for("index"))

    @app.post("/login")
    def login() -> Response:
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        expected = USERS.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            flash("Wrong user name or password.", "error")
            return redirect(url_for("index"))
        session = current_session()
        session.permanent = request.form.get("remember") == "1"  # remember-me, Flask-style
        session.login(username)  # new token; the anonymous cart comes along
        flash(f"Welcome, {username}!", "info")
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response:
        current_session().logout()
        flash("You are signed out.", "info")  # lands in a new, anonymous session
        return redirect(url_for("index"))

    @app.get("/account")
    @login_required
    def account() -> Any:
        session = current_session()
        return jsonify(user=session.user_id, cart=session.get("cart", []))

    @app.post("/account/email")
    @require_recent_auth(300)
    def change_email() -> Any:
        # Sensitive: only within five minutes of signing in.
        return jsonify(changed=True, email=request.form.get("email", ""))

    return app


if __name__ == "__main__":
    create_app().run(host="localhost", port=5000)
