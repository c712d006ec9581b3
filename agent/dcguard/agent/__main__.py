from dcguard.agent.cli import main

main()
