"""Administration: users and agents, password policy, departments' contacts, stored versions
of the declarative files and their checks, the admin API (docs/admin.md)."""
