"""The admin API (`/admin/...`): keys, labels, rollouts and alerts, behind the admin key."""
