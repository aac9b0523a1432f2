"""What a reader sees: claim checks, tables, figures and the papermill reports."""
