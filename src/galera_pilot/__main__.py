from galera_pilot.cli import main

main()
