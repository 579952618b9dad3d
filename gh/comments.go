package gh

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/google/go-github/v60/github"
)

// CommentMarker tags the one comment drover keeps on a pull request for
// key (a review app's name), so it is found and edited, never repeated.
func CommentMarker(key string) string { return "<!-- drover:" + key + " -->" }

// UpsertComment makes the comment tagged with key's marker on issue or
// pull request number say body: it edits the comment when there is one,
// and creates it otherwise. id, when not 0, is the comment drover made
// before, tried first to save a search.
func (c *Client) UpsertComment(ctx context.Context, repo string, number int, key, body string, id int64) (int64, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return 0, err
	}
	marker := CommentMarker(key)
	body = marker + "\n" + body
	if id == 0 {
		opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
		for id == 0 {
			list, resp, err := gc.Issues.ListComments(ctx, owner, name, number, opts)
			if err != nil {
				return 0, fmt.Errorf("comments of %s#%d: %w", repo, number, rateLimited(err, time.Now()))
			}
			for _, cm := range list {
				if strings.HasPrefix(cm.GetBody(), marker) {
					id = cm.GetID()
					break
				}
			}
			if resp.NextPage == 0 {
				break
			}
			opts.Page = resp.NextPage
		}
	}
	if id != 0 {
		_, resp, err := gc.Issues.EditComment(ctx, owner, name, id, &github.IssueComment{Body: github.String(body)})
		if err == nil {
			return id, nil
		}
		// Someone deleted it: make it again.
		if resp == nil || resp.StatusCode != 404 {
			return 0, fmt.Errorf("edit comment %d on %s#%d: %w", id, repo, number, rateLimited(err, time.Now()))
		}
	}
	cm, _, err := gc.Issues.CreateComment(ctx, owner, name, number, &github.IssueComment{Body: github.String(body)})
	if err != nil {
		return 0, fmt.Errorf("comment on %s#%d: %w", repo, number, rateLimited(err, time.Now()))
	}
	return cm.GetID(), nil
}

// PullRequest reads pull request number of repo.
func (c *Client) PullRequest(ctx context.Context, repo string, number int) (pipelines.PullRequest, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return pipelines.PullRequest{}, err
	}
	pr, _, err := gc.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return pipelines.PullRequest{}, fmt.Errorf("pull request %s#%d: %w", repo, number, rateLimited(err, time.Now()))
	}
	return FromPullRequest(pr), nil
}

// FromPullRequest takes what drover needs from go-github's pull request,
// as the API and the pull_request webhook both carry it.
func FromPullRequest(pr *github.PullRequest) pipelines.PullRequest {
	head := pr.GetHead()
	return pipelines.PullRequest{
		Number: pr.GetNumber(), Title: pr.GetTitle(), Head: head.GetSHA(), Branch: head.GetRef(),
		CloneURL: head.GetRepo().GetCloneURL(),
		// A pull request from another repository runs code the pipeline's
		// owners have not reviewed, with their secrets.
		// A head repository that is gone (a deleted fork) counts as one.
		Fork:  !strings.EqualFold(head.GetRepo().GetFullName(), pr.GetBase().GetRepo().GetFullName()) || head.GetRepo().GetFullName() == "",
		Draft: pr.GetDraft(), Open: pr.GetState() == "open",
	}
}

// OpenPullRequests lists repo's open pull requests, every page.
func (c *Client) OpenPullRequests(ctx context.Context, repo string) ([]pipelines.PullRequest, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []pipelines.PullRequest
	opts := &github.PullRequestListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
	for {
		list, resp, err := gc.PullRequests.List(ctx, owner, name, opts)
		if err != nil {
			return nil, fmt.Errorf("open pull requests of %s: %w", repo, rateLimited(err, time.Now()))
		}
		for _, pr := range list {
			out = append(out, FromPullRequest(pr))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}
