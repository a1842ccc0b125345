-- Undo 0004_workspace_name_order: the database's default collation again.
ALTER TABLE workspaces ALTER COLUMN name TYPE text COLLATE "default";
