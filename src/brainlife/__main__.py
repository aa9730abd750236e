from brainlife.cli.main import main

main()
