from roomserver.cli import main

main()
