package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/keyplane/keyplane/client"
)

// A backend lists its online devices, page after page.
func Example() {
	ctx := context.Background()
	kp := client.New("http://localhost:8080/graphql", client.WithKey(os.Getenv("KEYPLANE_KEY")))
	for d, err := range kp.AllDevices(ctx, client.DeviceFilter{Status: client.DeviceStatusOnline}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(d.Name, d.SerialNumber)
	}
}

// A key is rotated with an hour's grace, during which the old secret keeps
// working: the holders move to the new one without downtime.
func ExampleClient_RotateApiKey() {
	ctx := context.Background()
	kp := client.New("http://localhost:8080/graphql", client.WithKey(os.Getenv("KEYPLANE_KEY")))
	rotated, err := kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: "key_…", GracePeriodSeconds: 3600})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("rotated %+v", rotated) // the secret shows as kp_…[redacted]
	store(rotated.Secret.Reveal())     // the one place that sees it
}

func store(string) {}

// A device enrolls with an enrollment key, then reports in with its own
// token.
func ExampleClient_EnrollDevice() {
	ctx := context.Background()
	kp := client.New("http://localhost:8080/graphql")
	enrolled, err := kp.EnrollDevice(ctx, client.EnrollDeviceInput{
		EnrollmentKey: os.Getenv("KEYPLANE_ENROLLMENT_KEY"),
		SerialNumber:  "CAM-0042",
		Model:         "OAK-D",
	})
	if err != nil {
		log.Fatal(err)
	}
	device := kp.With(client.WithKey(enrolled.Token.Reveal()))
	if _, err := device.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{FirmwareVersion: "2.4.1"}); err != nil {
		log.Fatal(err)
	}
}

// Printing or encoding a Secret shows only its kind.
func ExampleSecret() {
	value := "kp_0356rzVqhtlh1iZVbzoM34_3fQk9Vw2mZpR8sT1uX4yB6nC0dE5gH7jK9lMo2pQ4rS6tU"
	secret := client.NewSecret(value)
	created := client.CreatedApiKey{ApiKey: client.ApiKey{Name: "ci"}, Secret: secret}

	fmt.Println(secret)
	fmt.Printf("%q %#v\n", secret, secret)
	encoded, _ := json.Marshal(map[string]any{"secret": secret})
	fmt.Println(string(encoded))
	fmt.Printf("%+v\n", created.Secret)
	fmt.Println(secret.Reveal() == value)
	// Output:
	// kp_…[redacted]
	// "kp_…[redacted]" client.Secret("kp_…[redacted]")
	// {"secret":"kp_…[redacted]"}
	// kp_…[redacted]
	// true
}

// Errors are matched by kind with errors.Is, and read with errors.As.
func ExampleError() {
	// What a key without DEVICES_WRITE gets from CreateDevice:
	var err error = &client.Error{Code: client.CodeForbidden, Message: "this key lacks the DEVICES_WRITE scope", Scope: "DEVICES_WRITE", StatusCode: 200}
	err = fmt.Errorf("registering a camera: %w", err)

	var e *client.Error
	switch {
	case errors.Is(err, client.ErrForbidden) && errors.As(err, &e):
		fmt.Println("missing scope:", e.Scope)
	case errors.Is(err, client.ErrUnauthenticated) && errors.As(err, &e):
		fmt.Println("refused:", e.Reason)
	}
	fmt.Println(err)
	// Output:
	// missing scope: DEVICES_WRITE
	// registering a camera: keyplane: FORBIDDEN: this key lacks the DEVICES_WRITE scope (scope DEVICES_WRITE)
}
