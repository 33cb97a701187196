"""Accounts: people who log in, their roles, and the login, logout and user admin pages and commands.

Who may do what is decided in core/auth.py (one table, one check before every request); this package only manages
the accounts themselves."""
