module github.com/writ-project/writ

go 1.26.8

require golang.org/x/net v0.62.0

require (
	github.com/gaissmai/bart v0.30.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
