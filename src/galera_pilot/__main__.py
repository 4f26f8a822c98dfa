from galera_pilot.cli.main import main

main()
