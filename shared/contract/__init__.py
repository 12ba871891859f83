"""The HTTP contract: the wire models (camelCase on the wire), one module per function or resource
(`upload`, `start`, `status`, `twins`, `previews`, on a shared `base`), and the route registry
(`routes`). A function imports the models of its own routes only (cold start).

Each response that shows a job is made from the row by one function, `Model.of(job)`, so a field
means the same on every route. The wire field `fursonaName` is the column `furrsona_name`: both
spellings are fixed by the frontend and the table.
"""
