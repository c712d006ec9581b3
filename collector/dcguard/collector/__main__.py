from dcguard.collector.cli.main import main

main()
