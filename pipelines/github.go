package pipelines

// What drover takes from GitHub, in drover's own shape. These types travel
// in workflow inputs and results, webhook intake and API bodies, so they
// are persisted in Temporal histories: the gh package converts go-github's
// types into them, and a change in go-github's shape stops there. Their
// field names are their JSON; renaming one breaks the replay of saved
// histories.

// PullRequest is what drover needs of a pull request to deploy it.
type PullRequest struct {
	Number   int
	Title    string
	Head     string
	Branch   string
	CloneURL string
	Fork     bool
	Draft    bool
	Open     bool
}

// CI states of a commit.
const (
	CIPending = "pending"
	CISuccess = "success"
	CIFailure = "failure"
)

// CIVerdict is what a commit's checks and statuses say together.
type CIVerdict struct {
	// State is CIPending, CISuccess or CIFailure.
	State string
	// Failing names the first failing check or status and where to see it.
	Failing    string
	FailingURL string
	// Waiting lists checks still running and required checks not seen yet.
	Waiting []string
	// None is true when the commit has no check run and no status at all.
	None bool
}

// BranchHead is a branch's newest commit and where to clone the repository.
type BranchHead struct {
	Commit   string
	Message  string
	CloneURL string
}
