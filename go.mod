module github.com/ciao-project/ciao

go 1.26.8

require (
	github.com/golang/glog v1.2.5
	github.com/google/uuid v1.6.0
	go.uber.org/goleak v1.3.0
	gopkg.in/yaml.v2 v2.4.0
)

require github.com/kr/text v0.2.0 // indirect
