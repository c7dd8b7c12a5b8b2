from mynumber.migrations.env_common import run

run()
