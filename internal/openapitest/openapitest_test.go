package openapitest

import (
	"slices"
	"testing"
)

const sample = `
openapi: 3.1.0
paths:
  /v1/things/{id}:
    parameters:
      - $ref: "#/components/parameters/ID"
    get: {operationId: getThing}
    delete: {operationId: deleteThing}
  /v1/other/{name}:
    post:
      operationId: postOther
      parameters:
        - {name: nom, in: path, required: true}
  /ui/:
    get: {operationId: console}
components:
  parameters:
    ID: {name: id, in: path, required: true}
`

// Compare finds each kind of mismatch, and nothing when there is none.
func TestCompare(t *testing.T) {
	ops, err := parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	problems, undescribed, unmounted := Compare(ops, []string{"GET /v1/things/{id}", "DELETE /v1/things/{id}", "POST /v1/other/{name}", "/ui/"})
	if want := []string{`POST /v1/other/{name}: path parameters [nom], but the path template has [name]`}; !slices.Equal(problems, want) {
		t.Errorf("problems = %q, want %q", problems, want)
	}
	if len(undescribed) != 0 || len(unmounted) != 0 {
		t.Errorf("undescribed %q, unmounted %q; want none", undescribed, unmounted)
	}
	problems, undescribed, unmounted = Compare(ops, []string{"GET /v1/things/{key}", "PUT /v1/things/{id}", "/v1/x"})
	if want := []string{
		`POST /v1/other/{name}: path parameters [nom], but the path template has [name]`,
		`pattern "GET /v1/things/{key}": the description has the path as "/v1/things/{id}": its wildcards are named differently`,
	}; !slices.Equal(problems, want) {
		t.Errorf("problems = %q, want %q", problems, want)
	}
	if want := []string{"/v1/x", "GET /v1/things/{key}", "PUT /v1/things/{id}"}; !slices.Equal(undescribed, want) {
		t.Errorf("undescribed = %q, want %q", undescribed, want)
	}
	if want := []string{"DELETE /v1/things/{id}", "GET /ui/", "GET /v1/things/{id}", "POST /v1/other/{name}"}; !slices.Equal(unmounted, want) {
		t.Errorf("unmounted = %q, want %q", unmounted, want)
	}
}
