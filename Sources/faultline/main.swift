import FaultlineCLI

FaultlineCommand.main()
