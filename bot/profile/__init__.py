"""The readiness profile: what the desk knows of each trader's setup (interfaces, permissions,
second factors, risk tier), the backup-device drill (TOTP), and the API automation register."""
