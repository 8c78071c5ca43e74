// Integration tests arrive in the next commit.
