module verigate.test/goapp

go 1.19
