"""Administration: users and agents, password policy, departments' contacts (docs/admin.md)."""
