/* Tessera passkeys: the WebAuthn ceremonies of the forms marked `data-passkey`
   ("create": add a passkey; "get": sign in, or a second factor). No framework, no inline
   script (the pages' CSP allows scripts of the site only).

   A form is shown only where the browser has WebAuthn. On submit: its `csrf` (and `flow`)
   are posted to `data-options`, which answers {ceremony, publicKey} (WebAuthn Level 3
   options as JSON, binary values base64url); the browser's passkey dialog runs; the
   credential goes back, as JSON with base64url values, in the form's `credential` field,
   and the form is submitted as a plain form: the server answers with the next page. */
(function () {
  "use strict";
  if (window.tesseraPasskeys) { return; }  // the page may include this script more than once
  window.tesseraPasskeys = true;

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: toBuffer(descriptor.id) });
    });
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: toBuffer(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    var options = Object.assign({}, json, { challenge: toBuffer(json.challenge) });
    if (json.allowCredentials) { options.allowCredentials = descriptors(json.allowCredentials); }
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {  // registration
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {  // authentication
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return JSON.stringify(json);
  }

  function showError(form, message) {
    var box = form.querySelector("[data-passkey-error]");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  async function fetchOptions(form) {
    var body = new URLSearchParams();
    ["csrf", "flow"].forEach(function (name) {
      var field = form.querySelector('input[name="' + name + '"]');
      if (field) { body.set(name, field.value); }
    });
    var answer = await fetch(form.getAttribute("data-options"), {
      method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" }
    });
    var answerJSON = await answer.json().catch(function () { return {}; });
    if (!answer.ok) {
      throw new Error(answerJSON.error_description || "The passkey request was refused; reload the page and try again.");
    }
    return answerJSON;
  }

  async function ceremony(form) {
    var options = await fetchOptions(form);
    var credential;
    try {
      credential = form.getAttribute("data-passkey") === "create"
        ? await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) })
        : await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    } catch (error) {
      if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
        throw new Error("The passkey request was cancelled or timed out.");
      }
      if (error && error.name === "InvalidStateError") {
        throw new Error("This authenticator holds a passkey for this account already.");
      }
      throw new Error("This browser or device could not use a passkey here.");
    }
    form.querySelector('input[name="ceremony"]').value = options.ceremony;
    form.querySelector('input[name="credential"]').value = credentialJSON(credential);
    HTMLFormElement.prototype.submit.call(form);  // a plain submit: no second submit event
  }

  function enable(form) {
    form.hidden = false;
    var busy = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      busy = true;
      ceremony(form).catch(function (error) {
        busy = false;
        showError(form, error.message);
      });
    });
  }

  function start() {
    if (!window.PublicKeyCredential || !navigator.credentials) { return; }
    document.querySelectorAll("form[data-passkey]").forEach(enable);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
