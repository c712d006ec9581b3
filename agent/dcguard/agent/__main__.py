from dcguard.agent.cli.main import main

main()
