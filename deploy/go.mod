module github.com/switchyard-go/switchyard/deploy

go 1.26.0

replace github.com/switchyard-go/switchyard => ../
