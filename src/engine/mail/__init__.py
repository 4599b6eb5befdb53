"""Outgoing mail: verification links, password resets, security notices.

- `senders`: the built-in senders, registered on the `tessera_register_mailers` hook like
  any plugin's: `outbox` (one `.eml` per message in a directory, links logged; the
  embedded default) and `smtp` (aiosmtplib; STARTTLS or implicit TLS, credentials from
  `${ENV}`).
- `compose`: messages are Jinja2 templates per realm (`mail/<name>.subject.txt`,
  `mail/<name>.txt`, `mail/<name>.html`), overridable through the realm's `templates:`
  directory like the pages, rendered into a multipart/alternative `EmailMessage`.
- `service`: `MailService.send` renders on the request path and delivers in the
  background, so neither the sender's latency nor its failures show in a response (and
  so cannot tell an observer which branch a request took).
"""
