from bakeoff.cli.app import main

main()
