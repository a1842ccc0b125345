-- Undo 0001_initial: drop every table it created, dependants first.
DROP TABLE notification_receipts;
DROP TABLE notifications;
DROP TABLE workspace_members;
DROP TABLE workspaces;
DROP TABLE sessions;
DROP TABLE users;
