"""The connector API: what connector authors import (records, schemas, config
definitions, connector and task base classes). Nothing here imports the runtime."""
