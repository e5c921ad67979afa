package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// putGroupMembers creates groupID if needed and adds members, through the
// admin API (PUT /v1/groups/{groupID}/members).
func putGroupMembers(ctx context.Context, hc *http.Client, adminURL, token, groupID string, members []string) error {
	body, err := json.Marshal(map[string][]string{"members": members})
	if err != nil {
		return err
	}
	u := adminURL + "/v1/groups/" + url.PathEscape(groupID) + "/members"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("PUT %s: %s: %s", u, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// deleteGroup removes a group the run created; failures only matter to
// the server's tidiness, so the caller notes them and goes on.
func deleteGroup(ctx context.Context, hc *http.Client, adminURL, token, groupID string) error {
	u := adminURL + "/v1/groups/" + url.PathEscape(groupID)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE %s: %s", u, resp.Status)
	}
	return nil
}
