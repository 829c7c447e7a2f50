// Passkeys on the sign-in pages: fetch options, call the browser's WebAuthn API, post the answer as a
// normal form (the server answers with a page or a redirect). Everything else works without JavaScript.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBytes(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }
  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = "";
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  async function options(form) {
    const body = new URLSearchParams({ csrf_token: form.elements.csrf_token.value });
    const response = await fetch(form.dataset.options, { method: "POST", body: body, credentials: "same-origin" });
    if (!response.ok) throw new Error("The server refused to start (" + response.status + ").");
    return response.json();
  }
  function status(text) {
    const el = document.getElementById("passkey-status");
    if (el) el.textContent = text;
  }

  async function signIn(form) {
    const o = await options(form);
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.get({ publicKey: o });
    const r = cred.response;
    form.elements.credential.value = JSON.stringify({
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null, clientExtensionResults: {},
      response: {
        clientDataJSON: toB64url(r.clientDataJSON), authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature), userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
    });
    form.submit();
  }

  async function register(form) {
    const o = await options(form);
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    const cred = await navigator.credentials.create({ publicKey: o });
    const r = cred.response;
    form.elements.credential.value = JSON.stringify({
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null, clientExtensionResults: {},
      response: {
        clientDataJSON: toB64url(r.clientDataJSON), attestationObject: toB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
      },
    });
    form.submit();
  }

  function wire(formId, buttonId, action) {
    const form = document.getElementById(formId);
    const button = document.getElementById(buttonId);
    if (!form || !button) return;
    form.hidden = false;
    button.addEventListener("click", function () {
      status("Follow your browser's prompt…");
      action(form).catch(function (e) { status("That did not work: " + e.message); });
    });
  }
  wire("passkey-form", "passkey-button", signIn);
  wire("register-form", "register-button", register);
})();
