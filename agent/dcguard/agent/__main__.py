from dcguard.agent.main import main

main()
