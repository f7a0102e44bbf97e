"""Views of the example. Login and logout are Django's own views; nothing here knows that
coatcheck keeps the sessions, except the "your sessions" list, which Django cannot do."""

from __future__ import annotations

from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from coatcheck.integrations.django import get_manager, revoke_other_sessions, user_sessions


def home(request: HttpRequest) -> HttpResponse:
    # Plain session data survives login (a new token is issued, the data stays).
    request.session["visits"] = request.session.get("visits", 0) + 1
    context = {"visits": request.session["visits"]}
    if request.user.is_authenticated:
        context["sessions"] = user_sessions(request.user.pk)
        context["current"] = request.session.handle
    return render(request, "home.html", context)


@login_required
def change_password(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)  # this session stays, under a new token
        revoke_other_sessions(request)  # every other device is signed out now
        return redirect("home")
    return render(request, "password.html", {"form": form})


@require_POST
@login_required
def revoke(request: HttpRequest, handle: str) -> HttpResponse:
    # Only the user's own sessions: a handle is public, so check whose it is.
    if any(s.handle == handle for s in user_sessions(request.user.pk)):
        get_manager().revoke_sync(handle)
    return redirect("home")
