"""The sign-in half of single sign-on: the browser's sign-in pages (password, TOTP, passkeys, recovery codes,
password change), smart lockout, and ``gate.sign_in_gate`` — what the authorization endpoint asks before it
issues a code. Every attempt is assessed by identity protection and decided by conditional access."""
