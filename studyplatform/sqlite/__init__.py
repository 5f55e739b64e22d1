"""Django's SQLite backend, making the database's folder when it is first opened."""
