package gh

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/pipelines"
)

// maxCompared is how many commits Compare lists; it counts them all.
const maxCompared = 100

// Compare reads what lies between base and head of repo ("owner/name")
// from GitHub's compare API: its status, how many commits head has that
// base lacks, and the oldest maxCompared of them.
func (c *Client) Compare(ctx context.Context, repo, base, head string) (pipelines.Comparison, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return pipelines.Comparison{}, err
	}
	cmp, _, err := gc.Repositories.CompareCommits(ctx, owner, name, base, head, &github.ListOptions{PerPage: maxCompared})
	if err != nil {
		return pipelines.Comparison{}, fmt.Errorf("compare %s...%s of %s: %w", base, head, repo, rateLimited(err, time.Now()))
	}
	out := pipelines.Comparison{Status: cmp.GetStatus(), Total: cmp.GetTotalCommits()}
	for _, rc := range cmp.Commits {
		msg, _, _ := strings.Cut(rc.GetCommit().GetMessage(), "\n")
		author := rc.GetAuthor().GetLogin()
		if author == "" {
			author = rc.GetCommit().GetAuthor().GetName()
		}
		out.Commits = append(out.Commits, pipelines.CommitInfo{SHA: rc.GetSHA(), Author: author, Message: msg})
	}
	return out, nil
}
