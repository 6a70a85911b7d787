"""MySQL/MariaDB change data capture from the binary log (pymysql-replication)."""
