"""dynclip studies: each module tests a family of claims of the seed papers (see REPORT.md)."""
