from dcguard.collector.cli import main

main()
